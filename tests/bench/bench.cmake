# Benchmark programs: executables built only on request, never tests.
#   cmake --build BUILD --target store_bench && BUILD/tests/store_bench -t 16
add_executable(store_bench EXCLUDE_FROM_ALL ${CMAKE_CURRENT_LIST_DIR}/store_bench.c)
target_link_libraries(store_bench PRIVATE postern_maildir Threads::Threads)
