import FuzzDriver
import PortcullisIR
import PortcullisImport
import PortcullisReaders

/// `import` on what either reader reads: the layout is detected and the host written as a
/// policy, as the command does.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImport(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = text(data, size)
    let ruleset =
        input.first == "{"
        ? (try? NftJSONReader().read(input))?.ruleset : (try? IptablesSaveReader().read(input))?.0
    if let ruleset, let layout = HostImport.detectLayout(of: ruleset) {
        _ = HostImport.importHost(from: ruleset, as: layout)
    }
    return 0
}
