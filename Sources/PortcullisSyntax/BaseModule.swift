// Diagnostics and source positions live in the base module, PortcullisNet, with the other
// values every stage shares. Re-exported so that code which reads them through the syntax
// module (the application layer, import, the tests) keeps compiling; each importing
// PortcullisNet itself makes this line unnecessary.
@_exported import PortcullisNet
