"""Data: the HPatches layouts, reader, cache, embedded generator, task splits and tf.data pipelines."""
