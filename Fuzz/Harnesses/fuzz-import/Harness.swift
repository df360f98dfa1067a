import FuzzDriver
import PortcullisAudit
import PortcullisIR
import PortcullisReaders

/// `import` on what either reader reads: the layout is detected and the host written as a
/// policy, as the command does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImport(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = text(data, size)
    let ruleset =
        input.first == "{"
        ? (try? NftJSONReader().read(input))?.ruleset : (try? IptablesSaveReader().read(input))?.0
    if let ruleset { _ = DetectedImport.importPolicy(from: ruleset) }
    return 0
}
