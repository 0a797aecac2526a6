"""Generated from protos/threadline/v1: do not edit."""
