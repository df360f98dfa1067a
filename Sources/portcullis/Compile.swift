import ArgumentParser
import PortcullisCompiler

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile a policy into a ruleset.",
        discussion: """
            Examples:
              portcullis compile policies/web-stack.policy
              portcullis compile policies/web-stack.policy --backend nftables -o web.nft
              portcullis compile policies/seed.policy --layout docker-1.5 --backend iptables

            The iptables backend writes iptables-restore input. When the layout also writes IPv6 \
            rules, -o FILE writes them to FILE.ip6tables; on stdout, --family ipv4 or ipv6 picks \
            the one to pipe into iptables-restore or ip6tables-restore, and --family both writes \
            both with a '#### ip6tables' line between them (the capture format audit, explain and \
            import read). The policy '-' is read from stdin.
            """)

    @Argument(help: "The policy file.", completion: .file(extensions: ["policy"]))
    var policy: String

    @OptionGroup var options: LayoutOptions
    @OptionGroup var bound: InventoryOptions

    @Option(name: .shortAndLong, help: "Write the ruleset to this file instead of stdout.", completion: .file())
    var output: String?

    @Option(help: "On stdout: ipv4, ipv6 or both (needed when the ruleset has both).")
    var family: OutputFamily?

    func run() throws {
        try execute {
            try $0.runCompile(
                policy, layout: options.layout, backend: options.backend, output: output, family: family,
                inventory: try bound.source())
        }
    }
}
