"""The control plane: accounts and their customers, snapshot settings, Data Sync groups,
deliveries, the audit history and notifications.

It is the one place where the CLI, the scheduler, the stream workers and the web app
read and change configuration: every check is made here once. It sits on the schemas and
the database connector, below the stream agents and the snapshot sinks.
"""
