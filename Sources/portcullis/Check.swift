import ArgumentParser
import PortcullisCompiler

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a policy, and have the kernel validate its ruleset without applying it.",
        discussion: """
            Everything 'compile' checks, then the kernel's own validation in the current network \
            namespace, which changes nothing: a libnftables dry run for the nftables backends, \
            'iptables-restore --test' for iptables. The kernel needs CAP_NET_ADMIN for that; \
            without it, 'check' says so and reports only the policy checks.

            Examples:
              portcullis check policies/web-stack.policy
              portcullis check policies/web-stack.policy --backend nftables
              unshare -rn portcullis check policies/web-stack.policy   # as any user, in a scratch namespace
            """)

    @Argument(help: "The policy file.", completion: .file(extensions: ["policy"]))
    var policy: String

    @OptionGroup var options: LayoutOptions

    func run() throws {
        try execute { try $0.runCheck(policy, layout: options.layout, backend: options.backend) }
    }
}
