using System.Text;
using PamEventStore.Gateway.Recording;

namespace PamEventStore.Gateway.Workloads;

/// <summary>An SSH session: keystrokes one input event each, command output in chunks, as a shell produces them.</summary>
public sealed class TerminalWorkload(int seed, DateTimeOffset start) : Workload(seed, start)
{
    private static readonly string[] Commands =
    [
        "ls -la /var/log", "sudo tail -n 20 /var/log/auth.log", "ps aux | grep postgres", "df -h", "cat /etc/os-release",
        "systemctl status nginx", "journalctl -u app --since today | tail", "uptime", "free -m", "sudo cat /etc/app/config.yaml",
    ];

    private static readonly string[] Users = ["root", "ubuntu", "postgres", "www-data", "syslog"];

    public override string ResourceType => "ssh";

    protected override IEnumerable<UnstampedEvent> NextActivity()
    {
        var command = Commands[Random.Next(Commands.Length)];
        foreach (var key in command + "\r") yield return Event("input", [(byte)key]);

        var output = new StringBuilder();
        var lines = Random.Next(5, 30);
        for (var i = 0; i < lines; i++)
        {
            output.Append($"{Users[Random.Next(Users.Length)],-10} {Random.Next(1, 65000),6} {Random.NextDouble() * 5:0.0} {Random.NextDouble() * 3:0.0} ")
                .Append($"Dec  4 {Random.Next(0, 24):00}:{Random.Next(0, 60):00} /usr/lib/app/worker-{Random.Next(1000):000} --port {Random.Next(1024, 65535)}\r\n");
        }

        output.Append("ubuntu@bastion:~$ ");
        var bytes = Encoding.UTF8.GetBytes(output.ToString());
        for (var at = 0; at < bytes.Length; at += 512) yield return Event("output", bytes.AsSpan(at, Math.Min(512, bytes.Length - at)).ToArray());
    }

    private static UnstampedEvent Event(string eventType, byte[] data) =>
        new(data.Length * 4 / 3 + 110, (timestamp, elapsed) => GoJson.SessionEvent(timestamp, eventType, "terminal", data, elapsed));
}
