import type { ServerResponse } from 'node:http';

/**
 * Runs `work` with the connection's idle timeout suspended. The server closes connections that
 * carry no bytes for a while (stalled clients must not hold sockets for ever), but some answers
 * legitimately take long to start: a snapshot of a repository that must first be cloned, or an
 * ensure-refs that waits for that clone. The timeout is restored when `work` settles.
 */
export async function holdingConnection<T>(res: ServerResponse, work: () => Promise<T>): Promise<T> {
  const socket = res.socket;
  const previous = socket?.timeout;
  socket?.setTimeout(0);
  try {
    return await work();
  } finally {
    if (socket && !socket.destroyed && previous) socket.setTimeout(previous);
  }
}
