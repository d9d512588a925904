"""The library behind the function app: everything here is testable without the Functions host."""
