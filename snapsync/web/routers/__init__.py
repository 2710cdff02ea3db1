"""One router per page group: sign-in, services, snapshots, sync, messages, audit,
download, and the JSON API."""
