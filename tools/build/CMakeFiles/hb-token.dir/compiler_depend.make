# Empty compiler generated dependencies file for hb-token.
# This may be replaced when dependencies are built.
