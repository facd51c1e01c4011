"""The Inkscape extension: Sketch…, Insert finished sketches and Refine; standard library and inkex only."""
