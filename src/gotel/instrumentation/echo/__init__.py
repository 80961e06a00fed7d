"""echo v4: the matched route (c.Path) for the net/http server span."""
