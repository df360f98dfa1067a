import ArgumentParser
import Foundation
import PortcullisCompiler
import PortcullisHarness

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

            With --kernel (as root), each layout's rules are also applied to a throwaway host \
            built from network namespaces (the policy's bridges, a namespace per container with \
            its addresses and MAC, an outside and an internet namespace behind an uplink), and \
            every expectation with a TCP or UDP port is sent as a real connection: the kernel's \
            verdict must be the expected one too. The namespaces are removed afterwards; the \
            machine's own ruleset is never touched.

            Exits 0 when every expectation holds, 1 when one fails, 2 when a file cannot be read.

            Examples:
              portcullis test policies/web-stack.test
              portcullis test policies/*.test
              sudo portcullis test policies/web-stack.test --kernel
            """)

    @Argument(help: "Test files.", completion: .file(extensions: ["test"]))
    var files: [String]

    @Flag(help: "Also send each expectation as real packets through the applied rules, in throwaway namespaces.")
    var kernel = false

    func run() throws {
        let executable =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        try execute { try $0.runPolicyTests(files, kernel: kernel ? executable : nil) }
    }
}

/// The peer `test --kernel` runs inside its namespaces: `probe serve PORT...` answers on each
/// port, `probe connect ADDRESS PORT [SOURCE]` exits 0 when the connection is answered.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe", abstract: "A TCP/UDP peer for test --kernel.", shouldDisplay: false)

    @Argument var mode: String
    @Argument var values: [String] = []

    func run() throws {
        switch mode {
        case "serve":
            let ports = values.compactMap(Probe.Port.init)
            guard ports.count == values.count, !ports.isEmpty else { throw ValidationError("serve PORT[/udp]...") }
            try Probe.serve(ports)
        case "connect":
            guard values.count == 2 || values.count == 3, let port = Probe.Port(values[1]) else {
                throw ValidationError("connect ADDRESS PORT[/udp] [SOURCE]")
            }
            throw ExitCode(Probe.connects(to: values[0], port: port, from: values.count == 3 ? values[2] : nil) ? 0 : 1)
        default:
            throw ValidationError("probe serve ... or probe connect ...")
        }
    }
}
