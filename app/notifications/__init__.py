"""The in-app inbox of things a user must act on, and email when MAIL_SERVER is set."""
