"""The Inkscape extension: New sketch…, Refine… and Update waiting sketches…; standard library and inkex only."""
