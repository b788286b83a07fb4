"""The floor every part stands on: error types and exit codes, atomic checkpoint files and safe
loads, config files, run names and directories, the one-writer run lock.

Imports nothing else from the package."""
