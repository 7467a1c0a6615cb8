file(REMOVE_RECURSE
  "CMakeFiles/hb-reconcile.dir/reconcile.c.o"
  "CMakeFiles/hb-reconcile.dir/reconcile.c.o.d"
  "hb-reconcile"
  "hb-reconcile.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/hb-reconcile.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
