# Fuzz regression tests: every harness in tests/fuzz/ built with the normal
# compiler as a plain program (its own main() replays files; libFuzzer is
# only used by tests/fuzz/build.sh with clang), run over its checked-in
# seeds and the minimised inputs of bugs it found (tests/fuzz/corpus/NAME/).
set(POSTERN_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(POSTERN_FUZZ_TARGETS
  "meta:postern_maildir"
  "meta_unpack:postern_maildir"
  "decode:postern_maildir"
  "config:postern_core"
  "sasl:postern_auth"
  "auth_files:postern_auth"
  "smtp_cmd:postern_smtp"
  "smtp_data:postern_smtp"
  "dkim:postern_smtp"
  "queue:postern_smtp"
  "pop3:postern_pop3"
  "sieve:postern_sieve")
foreach(entry ${POSTERN_FUZZ_TARGETS})
  string(REPLACE ":" ";" parts ${entry})
  list(GET parts 0 name)
  list(GET parts 1 lib)
  add_executable(fuzz_${name} ${POSTERN_FUZZ_DIR}/fuzz_${name}.c)
  target_link_libraries(fuzz_${name} PRIVATE ${lib})
  add_test(NAME fuzz_regress_${name}
    COMMAND fuzz_${name} ${POSTERN_FUZZ_DIR}/corpus/${name})
  set_tests_properties(fuzz_regress_${name} PROPERTIES TIMEOUT 60)
endforeach()
