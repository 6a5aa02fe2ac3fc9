"""ROS 2 adapter of stemseg: the perception node, message conversions and bag tools.

The generated message code (`stemseg_ros.msg`) lives in the colcon install space; this merges the
source package with it so both import from the repository root too.
"""
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
