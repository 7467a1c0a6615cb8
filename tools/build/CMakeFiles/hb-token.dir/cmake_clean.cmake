file(REMOVE_RECURSE
  "CMakeFiles/hb-token.dir/token.c.o"
  "CMakeFiles/hb-token.dir/token.c.o.d"
  "hb-token"
  "hb-token.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/hb-token.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
