import ArgumentParser
import PortcullisCompiler

struct Diff: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a policy's compiled output with its golden files.",
        discussion: """
            Golden files live in GOLDEN/<policy name>/<layout>.<extension>, with the extensions \
            iptables, ip6tables, nft and nft.json. 'diff' compiles the policy for every golden file \
            it has and prints a unified diff for each mismatch; use it in CI to catch any change to \
            the rules a policy produces.

            --update (re)writes the golden files for every layout and backend that can express \
            the policy. Read what changed before you commit it.

            Examples:
              portcullis diff policies/web-stack.policy
              portcullis diff policies/*.policy --golden golden
              portcullis diff policies/web-stack.policy --update
            """)

    @Argument(help: "Policy files.", completion: .file(extensions: ["policy"]))
    var policies: [String]

    @Option(help: "The golden directory.")
    var golden = "golden"

    @Flag(help: "Rewrite the golden files instead of comparing.")
    var update = false

    func run() throws {
        try execute { $0.runDiff(policies, golden: golden, update: update) }
    }
}
