import Foundation

/// Seeded random changes to a daemon's containers and networks, for the watch tests that follow
/// a real dockerd: runs, stops, starts, removals, restarts, connects and disconnects (and once,
/// a network created). The same seed gives the same commands over the same states.
struct DockerSteps {
    /// `docker ps -a` as `next` reads it.
    static let listing = ["ps", "-a", "--format", "{{.Names}} {{.State}}"]

    var random: SeededGenerator
    /// Networks a container may be run on or connected to (`bridge` and those the test made).
    var networks: [String]
    /// `network create` arguments for the one network a step may create.
    let extraNetwork: [String]
    /// Options a run gets half the time (none: the draw is not made).
    let runOptions: [String]
    /// The first published host port; the nth container publishes this + n.
    let firstPort: Int
    private var counter = 0
    private var networkCreated = false

    init(seed: UInt64, networks: [String], extraNetwork: [String], runOptions: [String] = [], firstPort: Int) {
        random = SeededGenerator(seed: seed)
        self.networks = networks
        self.extraNetwork = extraNetwork
        self.runOptions = runOptions
        self.firstPort = firstPort
    }

    /// The next command for the containers `listing` shows (`docker ps -a` output, see
    /// `DockerSteps.listing`); nil when the draw has nothing to act on.
    mutating func next(listing: String) -> [String]? {
        let states = listing.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let running = states.filter { $0.count == 2 && $0[1] == "running" }.map { $0[0] }
        let stopped = states.filter { $0.count == 2 && $0[1] != "running" }.map { $0[0] }
        let all = states.compactMap(\.first)
        switch random.next() % 8 {
        case 0, 1:
            counter += 1
            var command = ["run", "-d", "--name", "c\(counter)", "--network", random.pick(networks) ?? "bridge"]
            if random.next() % 2 == 0 { command += ["-p", "\(firstPort + counter):80"] }
            if !runOptions.isEmpty, random.next() % 2 == 0 { command += runOptions }
            return command + ["tiny:1"]
        case 2:
            return random.pick(running).map { ["stop", "-t", "0", $0] }
        case 3:
            return random.pick(stopped).map { ["start", $0] }
        case 4:
            return random.pick(all).map { ["rm", "-f", $0] }
        case 5:
            return random.pick(running).map { ["restart", "-t", "0", $0] }
        case 6:
            guard let name = random.pick(running), let network = random.pick(networks) else { return nil }
            return ["network", "connect", network, name]
        default:
            if !networkCreated {
                networkCreated = true
                networks.append(extraNetwork.last ?? "")
                return ["network", "create"] + extraNetwork
            }
            guard let name = random.pick(running), let network = random.pick(networks) else { return nil }
            return ["network", "disconnect", network, name]
        }
    }
}
