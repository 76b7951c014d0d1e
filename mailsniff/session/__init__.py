"""Session builders: fold protocol events into the records of `mailsniff.model`."""
