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

            With --alongside-docker only the part Portcullis owns beside a running Docker \
            daemon is written: the filter table's DOCKER-USER chain alone, for \
            'iptables-restore --noflush' (keep '-j DOCKER-USER' first in FORWARD), or for \
            docker-29 on nftables the portcullis-user tables.
            """)

    @Argument(help: "The policy file.", completion: .file(extensions: ["policy"]))
    var policy: String

    @OptionGroup var options: LayoutOptions
    @OptionGroup var bound: InventoryOptions

    @Option(name: .shortAndLong, help: "Write the ruleset to this file instead of stdout.", completion: .file())
    var output: String?

    @Option(help: "On stdout: ipv4, ipv6 or both (needed when the ruleset has both).")
    var family: OutputFamily?

    @Flag(help: ArgumentHelp(alongsideDockerHelp))
    var alongsideDocker = false

    func run() throws {
        try execute {
            try $0.runCompile(
                policy, layout: options.layout, backend: options.backend, output: output, family: family,
                inventory: try bound.source(), alongsideDocker: alongsideDocker)
        }
    }
}
