import PortcullisImport
import PortcullisLayouts
import PortcullisSyntax

/// What `import` is asked: a saved ruleset, or a Docker host's inventory (with, optionally,
/// its saved rules for the daemon flags the Engine API does not report); the layout (nil:
/// detected from the rules or the daemon's version), and where the policy goes.
public struct ImportRequest: Sendable {
    public var capture: HostCapture?
    public var inventory: InventorySource?
    public var layout: String?
    /// A file for the policy; nil: stdout.
    public var output: String?

    public init(capture: HostCapture, layout: String? = nil, output: String? = nil) {
        self.capture = capture
        self.layout = layout
        self.output = output
    }

    public init(inventory: InventorySource, rules: HostCapture? = nil, layout: String? = nil, output: String? = nil) {
        self.inventory = inventory
        self.capture = rules
        self.layout = layout
        self.output = output
    }
}

extension Application {
    /// Reads the host's rules, imports them with the layout given or detected, and writes the
    /// policy. What was assumed or left out goes to stderr as well as into the policy, with the
    /// user rules it cannot say quoted at its end.
    public func runImport(_ request: ImportRequest) throws -> RunStatus {
        if let inventory = request.inventory {
            return try importInventory(inventory, rules: request.capture, request: request)
        }
        guard let capture = request.capture else { throw CompileFailure.usage("import needs a ruleset to read") }
        let forced = try request.layout.map { name in
            guard let layout = Layouts.named(name) else {
                throw CompileFailure.usage(
                    "import reads the layouts \(Layouts.names.joined(separator: ", ")), not '\(name)'")
            }
            return layout
        }
        // The same reading as audit and explain (an ip6tables part after '#### ip6tables').
        let host = try read(capture, liveFirewall: .iptables)
        guard let layout = forced ?? HostImport.detectLayout(of: host.ruleset) else {
            throw CompileFailure.usage(
                "\(host.source) holds no Docker rules (no filter DOCKER chain) and no native table")
        }
        console.progress("importing \(host.source) as \(layout.name)")
        guard let result = HostImport.importHost(from: host.ruleset, as: layout) else {
            throw CompileFailure.usage("\(host.source) holds no native layout (no table inet portcullis)")
        }
        console.note(forced == nil ? "detected layout \(layout.name)" : "layout \(layout.name) (given)")
        let policy = Printer.print(syntax(of: result, path: request.output ?? "-"))
        guard let output = request.output else {
            console.output(policy)
            return .clean
        }
        try Self.write(policy, to: output)
        return .clean
    }

    /// The imported policy as a syntax tree, noting on stderr what was assumed or left out.
    func syntax(of result: ImportResult, path: String) -> SyntaxFile {
        for line in result.host.assumed { console.note("assumed: \(line)") }
        for line in result.host.notImported { console.note("not imported: \(line)") }
        var syntax = result.host.syntax(path: path)
        let speller = RuleSpeller(firewall: .iptables)
        for (chain, family, rule) in result.notImportedRules {
            let text = speller.text(rule, chain: chain, family: family, table: nil) ?? "\(rule)"
            console.note("  \(text)")
            syntax.endTrivia.append(.comment("#   \(text)"))
        }
        return syntax
    }
}
