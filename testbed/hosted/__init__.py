"""Hosting a real Archivist checkout in the stack, instead of the reference API.

`config/apps/NAME.toml` says how (requirements, commands, environment, stand-ins); this
package builds the app's own venv, renders its environment and wraps its commands. The
checkout is only read, never edited.
"""
