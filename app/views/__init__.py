"""Views: widgets that show core state and write user actions back."""
