"""The Services web app: Account Administration > Services for Auth Reps (Recurring Data
Snapshots, Data Sync, Messaging, downloads, audit history) and a JSON API for scripts.

``snapsync web`` serves it; :func:`snapsync.web.app.create_app` builds it.
"""
