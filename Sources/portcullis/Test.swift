import ArgumentParser
import PortcullisCompiler

struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a policy's own tests: what its rules must accept and what they must drop.",
        discussion: """
            A test file names its policy (default: the same name with .policy) and lists \
            expectations, one per line: 'expect accept|drop FROM -> TO [port PORT/PROTOCOL]', \
            with the endpoints of 'explain' (a container, a network, an address, outside:ADDRESS, \
            host). Each expectation is checked on every layout and firewall the policy compiles \
            for, by walking the packet through the compiled rules as 'explain' does; a failed one \
            is reported at its line with the rules that decided it.

            Exits 0 when every expectation holds, 1 when one fails, 2 when a file cannot be read.

            Examples:
              portcullis test policies/web-stack.test
              portcullis test policies/*.test
            """)

    @Argument(help: "Test files.", completion: .file(extensions: ["test"]))
    var files: [String]

    func run() throws { try execute { try $0.runPolicyTests(files) } }
}
