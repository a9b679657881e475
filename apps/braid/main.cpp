#include <cstdio>
int main() { std::puts("braid"); return 0; }
