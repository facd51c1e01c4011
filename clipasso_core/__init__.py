"""CLIPasso's optimizer as a library: image → strokes → SVG, with no HTTP and no Inkscape in it."""
