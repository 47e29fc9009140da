"""Tables, plots and the markdown report built from the results store."""
