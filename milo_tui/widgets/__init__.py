"""Widgets render what they are given; the app's handlers own the state."""
