// Links the generated header TUs (one per header, on its own, and two that include every
// header) into one program: a namespace-scope definition that is not inline shows up here as a
// duplicate symbol.
int main() {
  return 0;
}
