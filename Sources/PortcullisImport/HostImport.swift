import PortcullisIR
import PortcullisLayouts

/// What an import read: the host, and the user rules the policy language cannot say.
public struct ImportResult: Sendable {
    /// What the rules say, to be written as the policy.
    public let host: ImportedHost
    /// User rules the language cannot say, with their chain and family, for the caller to quote.
    public let notImportedRules: [(chain: String, family: TableFamily, rule: Rule)]

    public init(host: ImportedHost, notImportedRules: [(chain: String, family: TableFamily, rule: Rule)] = []) {
        self.host = host
        self.notImportedRules = notImportedRules
    }
}

/// Import is the inverse of the layouts: it reads a host's rules (as the readers put them in
/// the IR) back into the policy a layout would have lowered them from. Every layout of
/// `Layouts.all` is read, by one recognizer per layout family: Docker's iptables eras (and
/// Docker 29's nftables tables) by `DockerImporter`, the native table by `NativeImporter`.
public enum HostImport {
    /// The layout that wrote the rules: the native layout's table when there is one, else the
    /// era of Docker's chains; nil when the rules are neither.
    public static func detectLayout(of ruleset: Ruleset) -> (any Layout)? {
        if NativeImporter(ruleset: ruleset) != nil { return Layouts.named(NativeLayout.name) }
        return DockerImporter(ruleset: ruleset).detectedLayout.flatMap(Layouts.named)
    }

    /// The host as `layout` wrote it. Docker's chains are read whatever the rules hold; nil
    /// when the layout is the native one and the rules hold no native table.
    public static func importHost(from ruleset: Ruleset, as layout: any Layout) -> ImportResult? {
        if layout.name == NativeLayout.name { return NativeImporter(ruleset: ruleset)?.importPolicy() }
        return DockerImporter(ruleset: ruleset).importPolicy(as: layout)
    }
}
