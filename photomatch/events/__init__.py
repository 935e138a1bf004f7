"""Events: a photographer's album, its slug, attendee access code and retention date."""
