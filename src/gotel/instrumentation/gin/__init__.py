"""gin: the matched route (c.FullPath) for the net/http server span."""
