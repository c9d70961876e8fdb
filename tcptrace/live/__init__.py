"""The live side: everything that opens sockets, captures on `lo`, asks `ss` or tracefs,
and the close modes (Python and Node.js). `close_run` is where it meets the engine."""
