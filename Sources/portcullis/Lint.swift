import ArgumentParser
import PortcullisCompiler

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Point out what is legal in a policy but likely a mistake.",
        discussion: """
            Reports, as warnings at their lines: groups, address sets and services that nothing \
            names; allow and deny statements that an earlier one covers entirely (the first \
            match decides, so they never do); allows that open an internal network to a \
            container of another network; and ports published to everyone on a host with an \
            'external' uplink.

            Exits 0 without findings, 1 with findings, 2 when the policy has errors.

            Example:
              portcullis lint policies/web-stack.policy
            """)

    @Argument(help: "The policy file.", completion: .file(extensions: ["policy"]))
    var policy: String

    func run() throws { try execute { try $0.runLint(policy) } }
}
