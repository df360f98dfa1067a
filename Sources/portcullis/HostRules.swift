import ArgumentParser
import PortcullisCompiler

/// Where `audit` and `explain` read a host's rules from: a saved ruleset or the live host.
struct HostRuleSource: ParsableArguments {
    @Option(
        help: "A saved ruleset ('-' for stdin): iptables-save output or an 'nft -j list ruleset' document.",
        completion: .file())
    var ruleset: String?

    @Flag(help: "The rules of this host (the current network namespace).")
    var live = false

    var isGiven: Bool { ruleset != nil || live }

    /// The capture the options name: exactly one of them.
    func capture(format: RulesetFormat? = nil) throws -> HostCapture {
        switch (ruleset, live) {
        case (let path?, false): return .file(path, format: format)
        case (nil, true): return .live
        default: throw CompileFailure.usage("give exactly one of --ruleset FILE and --live")
        }
    }
}

extension RulesetFormat: ExpressibleByArgument {}
extension PortcullisCompiler.ReportFormat: ExpressibleByArgument {}
extension OutputFamily: ExpressibleByArgument {}
