# Empty compiler generated dependencies file for hb-reconcile.
# This may be replaced when dependencies are built.
