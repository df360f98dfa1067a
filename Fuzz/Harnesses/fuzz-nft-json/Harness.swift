import FuzzDriver
import PortcullisAudit
import PortcullisReaders

/// The libnftables JSON reader as audit and import use it: whatever reads is audited as well.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNftJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let result = try? NftJSONReader().read(text(data, size)) else { return 0 }
    _ = RiskAudit(ruleset: result.ruleset).findings()
    return 0
}
