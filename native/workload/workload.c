/* PLACEHOLDER: the built-in workload lands with `vtier workload`. */
int main(void) { return 1; }
