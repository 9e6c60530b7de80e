// gridspawner-lab: the time left before the hub stops this server, in the status bar, and a
// notification at each warning time the hub admin chose. The server extension answers
// GET {baseUrl}gridspawner/stops; this plugin asks again every `poll_seconds` (the hub may
// move a stop) and ticks every second between answers.
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { StopTracker } from './stops.js';

const PLUGIN_ID = 'gridspawner-lab:stop-warnings';
const DEFAULT_POLL_SECONDS = 60;

/** "14:35" in the browser's time zone and locale. */
function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** The status bar item: plain text, active (shown by the status bar) while a stop is known. */
function createStatusItem() {
  const item = new Widget();
  item.addClass('jp-gridspawner-TimeLeft');
  item.id = 'gridspawner-lab-time-left';
  const text = document.createElement('span');
  text.className = 'jp-StatusBar-TextItem';
  item.node.appendChild(text);
  const self = {
    widget: item,
    active: false,
    activeStateChanged: null,
    show(status) {
      if (status) {
        if (text.textContent !== status.text) {
          text.textContent = status.text;
        }
        item.node.title = status.title;
      }
      if (self.active !== Boolean(status)) {
        self.active = Boolean(status);
        self.activeStateChanged.emit(undefined);
      }
    }
  };
  self.activeStateChanged = new Signal(self);
  return self;
}

async function fetchStops(settings) {
  const url = URLExt.join(settings.baseUrl, 'gridspawner', 'stops');
  const response = await ServerConnection.makeRequest(url, { cache: 'no-store' }, settings);
  if (!response.ok) {
    throw new Error(`${url} answered ${response.status}`);
  }
  return response.json();
}

const plugin = {
  id: PLUGIN_ID,
  description: 'Shows the time left before gridspawner stops this server and warns before it does.',
  autoStart: true,
  optional: [IStatusBar],
  activate: (app, statusBar) => {
    const settings = ServerConnection.makeSettings();
    const tracker = new StopTracker(clock);
    const status = createStatusItem();
    if (statusBar) {
      statusBar.registerStatusItem(PLUGIN_ID, {
        item: status.widget,
        align: 'left',
        rank: 1000,
        isActive: () => status.active,
        activeStateChanged: status.activeStateChanged
      });
    }
    const toasts = new Map(); // stop key → id of its latest notification
    let complained = false;

    const tick = () => {
      const { status: now, warnings } = tracker.tick(Date.now() / 1000);
      status.show(now);
      for (const { key, message } of warnings) {
        if (toasts.has(key)) {
          Notification.dismiss(toasts.get(key)); // the newer warning replaces it
        }
        toasts.set(key, Notification.warning(message, { autoClose: false }));
      }
    };

    const poll = async () => {
      let next = DEFAULT_POLL_SECONDS;
      try {
        const answer = await fetchStops(settings);
        tracker.update(answer, Date.now() / 1000);
        next = answer.poll_seconds || DEFAULT_POLL_SECONDS;
        complained = false;
        tick();
      } catch (err) {
        if (!complained) {
          console.warn(`${PLUGIN_ID}: cannot read the server's stops (${err}); trying again later`);
          complained = true;
        }
      }
      window.setTimeout(poll, next * 1000);
    };

    // after the restore, so that the notifications' toasts are there to show them
    void app.restored.then(() => {
      void poll();
      window.setInterval(tick, 1000);
    });
  }
};

export default plugin;
