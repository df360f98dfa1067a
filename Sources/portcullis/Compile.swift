import ArgumentParser
import Foundation
import PortcullisCompiler
import PortcullisRender

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
        let files: [RenderedFile]
        switch Compiler().compile(policy, layout: options.layout, backend: options.backend) {
        case .success(let rendered): files = rendered
        case .failure(let failure): throw fail(failure)
        }
        guard let output else {
            print(CaptureFormat.joined(files), terminator: "")
            return
        }
        for (index, file) in files.enumerated() {
            let path = index == 0 ? output : "\(output).\(file.fileExtension)"
            do {
                try file.text.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                printError("error: cannot write \(path): \(error.localizedDescription)")
                throw ExitCode(2)
            }
        }
    }
}
