// Links the generated header TUs (two per public header) into one program: a namespace-scope
// definition that is not inline shows up here as a duplicate symbol.
int main() {
  return 0;
}
