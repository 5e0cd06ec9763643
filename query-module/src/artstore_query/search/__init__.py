"""Search over the admin's catalog (DESIGN sections 6 and 7)."""
