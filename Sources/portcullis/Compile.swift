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

            The iptables backend writes iptables-restore input; when the layout also writes IPv6
            rules they go to FILE.ip6tables (or follow a '#### ip6tables' line on stdout).
            """)

    @Argument(help: "The policy file.")
    var policy: String

    @OptionGroup var options: LayoutOptions

    @Option(name: .shortAndLong, help: "Write the ruleset to this file instead of stdout.")
    var output: String?

    func run() throws {
        try execute { try $0.runCompile(policy, layout: options.layout, backend: options.backend, output: output) }
    }
}
