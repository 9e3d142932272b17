using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace PamEventStore.Tests.Infrastructure;

/// <summary>
/// A loopback TCP relay between a service and PostgreSQL that a test can cut and mend, as a network
/// failure or a database failover would: cut, open connections drop and new ones are refused. Or stall,
/// as a frozen server or a lost route does: connections stay open and are taken, and nothing goes through.
/// </summary>
public sealed class DatabaseLink : IAsyncDisposable
{
    private readonly string _databaseHost;
    private readonly int _databasePort;
    private readonly Lock _lock = new();
    private readonly List<TcpClient> _open = [];
    private TcpListener? _listener;
    private TaskCompletionSource _flowing = Flowing();

    private static TaskCompletionSource Flowing()
    {
        var flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        flowing.SetResult();
        return flowing;
    }

    private DatabaseLink(string connectionString)
    {
        var target = new NpgsqlConnectionStringBuilder(connectionString);
        (_databaseHost, _databasePort) = (target.Host!, target.Port);
        target.Host = "127.0.0.1";
        target.Port = Listen(0);
        ConnectionString = target.ConnectionString;
    }

    /// <summary>The database's connection string, through this link.</summary>
    public string ConnectionString { get; }

    public static DatabaseLink To(string connectionString) => new(connectionString);

    /// <summary>Drops every connection through the link and refuses new ones.</summary>
    public void Cut()
    {
        lock (_lock)
        {
            _listener?.Stop();
            _listener = null;
            foreach (var client in _open.ToArray()) client.Dispose();
            _open.Clear();
        }
    }

    /// <summary>Nothing goes through any connection, open or new, until <see cref="Resume"/>.</summary>
    public void Stall()
    {
        lock (_lock) _flowing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public void Resume()
    {
        lock (_lock) _flowing.TrySetResult();
    }

    /// <summary>Takes connections again, on the same port.</summary>
    public void Mend() => Listen(new NpgsqlConnectionStringBuilder(ConnectionString).Port);

    private int Listen(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start();
        lock (_lock) _listener = listener;
        _ = AcceptAsync(listener);
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        while (true)
        {
            TcpClient service;
            try
            {
                service = await listener.AcceptTcpClientAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException)
            {
                return; // cut
            }

            var database = new TcpClient();
            try
            {
                await database.ConnectAsync(_databaseHost, _databasePort);
            }
            catch (SocketException)
            {
                service.Dispose();
                database.Dispose();
                continue;
            }

            lock (_lock)
            {
                if (_listener != listener)
                {
                    service.Dispose();
                    database.Dispose();
                    return;
                }

                _open.Add(service);
                _open.Add(database);
            }

            _ = RelayAsync(service, database);
            _ = RelayAsync(database, service);
        }
    }

    private async Task RelayAsync(TcpClient from, TcpClient to)
    {
        try
        {
            var buffer = new byte[16 * 1024];
            while (await from.GetStream().ReadAsync(buffer) is var read and > 0)
            {
                Task flowing;
                lock (_lock) flowing = _flowing.Task;
                await flowing;
                await to.GetStream().WriteAsync(buffer.AsMemory(0, read));
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
        }
        finally
        {
            from.Dispose();
            to.Dispose();
            lock (_lock)
            {
                _open.Remove(from);
                _open.Remove(to);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        Resume();
        Cut();
        return ValueTask.CompletedTask;
    }
}
