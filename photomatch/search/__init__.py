"""Attendee selfie search: one selfie in, the event's photos of that person out, best first."""
