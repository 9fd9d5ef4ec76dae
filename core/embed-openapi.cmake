# Turns doc/openapi.json into a C source (routes_openapi, routes.h) at build
# time: the daemon serves the description without reading a file. A document
# that is not JSON fails the build.
# cmake -DIN=doc/openapi.json -DOUT=routes_openapi.c -P embed-openapi.cmake
file(READ ${IN} text)
if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.19)
  string(JSON kind ERROR_VARIABLE bad TYPE "${text}")
  if(bad)
    message(FATAL_ERROR "${IN}: not valid JSON: ${bad}")
  endif()
endif()
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT}.tmp "/* generated from ${IN} by core/embed-openapi.cmake */\n#include <stddef.h>\nconst char routes_openapi[] = {\n${bytes}0};\nconst size_t routes_openapi_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
