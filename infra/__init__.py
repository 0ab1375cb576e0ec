"""The servestack infrastructure: stack config, Serve config, capacity plan, Pulumi program."""
